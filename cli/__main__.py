from aiwgd.cli.fastpath import entry

entry()
