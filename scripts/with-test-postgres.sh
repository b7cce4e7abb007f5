#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster (scripts/test-postgres.sh) named in
# $LGAP_TEST_POSTGRES, and removes the cluster afterwards whatever the command's outcome.
set -euo pipefail
here=$(dirname "$0")
eval "$("$here/test-postgres.sh" start)"
trap '"$here/test-postgres.sh" stop' EXIT
echo "test PostgreSQL: $LGAP_TEST_POSTGRES"
"$@"
