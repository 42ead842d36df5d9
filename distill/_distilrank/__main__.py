"""``python -m distilrank``: the same command line as the ``distilrank`` script."""

from distilrank.distill.cli import main

if __name__ == "__main__":
    main()
