#!/bin/sh
# The image's entrypoint, as registry:2's: a config file alone serves it, a Berth command (or
# registry:2's serve / garbage-collect) runs it, anything else runs as given (docker run berth sh).
set -e
case "$1" in
  *.yaml|*.yml) set -- berth serve "$@" ;;
  serve|garbage-collect|gc|health|token-server|version|help|-*) set -- berth "$@" ;;
esac
exec "$@"
