"""`bwms edge …`: the edge daemon and its offline replay."""

import typer

edge_app = typer.Typer(help="Edge daemon of one portal.", no_args_is_help=True)
