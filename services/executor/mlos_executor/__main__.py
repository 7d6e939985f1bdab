from mlos_common.service_main import run_service
from mlos_executor.config import ExecutorSettings
from mlos_executor.server import start

if __name__ == "__main__":
    run_service("executor", ExecutorSettings(), start)
