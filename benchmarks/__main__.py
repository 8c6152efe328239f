import sys

from benchmarks.run import main

if __name__ == "__main__":  # not when multiprocessing's spawn imports this module again
    sys.exit(main())
