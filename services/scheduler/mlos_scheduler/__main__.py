from mlos_common.service_main import run_service
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.server import start

if __name__ == "__main__":
    run_service("scheduler", SchedulerSettings(), start)
