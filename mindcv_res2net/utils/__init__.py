"""What every layer uses: file I/O (atomic writes, output checks, sha256 records), downloads, logging,
the device and its training plan, argument types, the command-line runner, FLOPs counting, the error
class for bad input and how messages show values and lists."""
