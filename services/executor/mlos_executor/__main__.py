import logging
import sys

from pydantic import ValidationError

from mlos_common.service_main import run_service
from mlos_executor.config import ExecutorSettings
from mlos_executor.server import start

if __name__ == "__main__":
    try:
        settings = ExecutorSettings()
    except ValidationError as exc:  # a clear line naming the setting, not a traceback
        logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
        for e in exc.errors():
            where = "MLOS_EXECUTOR_" + "_".join(str(p) for p in e["loc"]).upper()
            logging.getLogger("executor").error("cannot start: %s=%r: %s", where, e.get("input"), e["msg"])
        sys.exit(1)
    run_service("executor", settings, start)
