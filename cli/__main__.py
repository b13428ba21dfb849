from synthrank_cli.main import main

main()
