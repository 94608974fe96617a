"""What the host CPU offers, for the differential tests' target lists."""


def host_has(flag):
    """Whether /proc/cpuinfo lists `flag` (e.g. "avx2") for this CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f
                       if line.startswith("flags"))
    except OSError:
        return False
