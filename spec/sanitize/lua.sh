#!/bin/sh
# lua5.4 with the ASan/UBSan runtime preloaded: the interpreter is not
# instrumented, the smartauth core it loads (build/asan) is, and ASan must be
# the first library in the process. `make sanitize` passes this as busted's
# --lua and sets SA_SAN_PRELOAD; noinherit.so (listed after the runtime)
# removes LD_PRELOAD again so child processes are not affected.
: "${SA_SAN_PRELOAD:?set by make sanitize}"
LD_PRELOAD="$SA_SAN_PRELOAD" exec lua5.4 "$@"
