"""What every layer uses: file I/O (atomic writes, output checks, sha256 records), downloads, logging,
the device and its training plan, argument types, the command-line runner, FLOPs counting, values
and lists as messages show them."""
