from pipeline.cli.app import run_cli

run_cli()
