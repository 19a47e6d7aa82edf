from noosphere.cli import main

main()
