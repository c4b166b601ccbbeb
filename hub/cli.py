"""`bwms hub …` and `bwms manifest …`: the hub service and its manifests."""

import typer

hub_app = typer.Typer(help="Hub service: ingest, manifests, API.", no_args_is_help=True)
manifest_app = typer.Typer(help="Expected manifests of receipts and shipments.", no_args_is_help=True)
