from clowncar.cli import main

main()
