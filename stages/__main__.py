from stages.app import main

main()
