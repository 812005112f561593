"""The domain: record types, the status a target receives, how numbers read. Imports nothing of ours."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("okrsync")
except PackageNotFoundError:  # run from a source tree that is not installed
    VERSION = "0+unknown"
