"""The caching toolkit for monitored applications (issue 4): being built."""
