"""``python -m distilrank``: the same command line as the ``distilrank`` script."""

from distilrank.cli import main

if __name__ == "__main__":
    main()
