# Tests registered with CTest (filled in below).
