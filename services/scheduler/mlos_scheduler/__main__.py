from mlos_common.service_main import run_service
from mlos_scheduler.config import SchedulerSettings
from mlos_scheduler.server import start

if __name__ == "__main__":
    settings = SchedulerSettings()
    if settings.workers > 1:  # a supervisor of `workers` processes like this one (see supervisor.py)
        from mlos_scheduler.supervisor import run_supervisor

        run_supervisor(settings)
    else:
        worker = settings.worker_index
        if worker >= 0:
            from mlos_scheduler.supervisor import die_with_parent

            die_with_parent()
        run_service("scheduler" if worker < 0 else f"scheduler[w{worker}]", settings, start)
