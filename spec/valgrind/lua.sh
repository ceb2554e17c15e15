#!/bin/sh
# lua5.4 under valgrind memcheck, used as busted's --lua by `make valgrind`.
# Only this process is checked (--trace-children=no): the node servers, shells
# and tools the specs start run natively. Exit status 99 means memcheck found
# an error (invalid read/write, use of uninitialised memory, a definite leak).
here=$(dirname "$0")
exec valgrind --quiet --trace-children=no --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --error-exitcode=99 --num-callers=40 \
  --suppressions="$here/smartauth.supp" lua5.4 "$@"
