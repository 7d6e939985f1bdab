from mlos_common.service_main import run_service
from mlos_predictor.config import PredictorSettings
from mlos_predictor.server import start


def main() -> None:
    run_service("predictor", PredictorSettings(), start)


if __name__ == "__main__":
    main()
