from pipeline.tools.cli import run_cli

run_cli()
