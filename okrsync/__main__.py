"""python -m okrsync."""

from okrsync.cli import main

if __name__ == "__main__":
    main()
