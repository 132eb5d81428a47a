"""Single-host alternative to prefect.yaml: serve the produce and nightly catalog deployments
from this process (`python -m flows.serve [CATALOG] [OUT]`, needs PREFECT_API_URL of a server)."""
from __future__ import annotations

import sys

from prefect import serve

from flows.catalog import narrate_catalog
from flows.produce import produce


def main(catalog: str = "projects", out: str = "out") -> None:
    serve(
        produce.to_deployment(name="local"),
        narrate_catalog.to_deployment(name="nightly-local", cron="0 2 * * *",
                                      parameters={"catalog": catalog, "options": {"out_dir": out}}),
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
