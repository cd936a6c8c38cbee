#!/bin/sh
# Initialises the single-node Couchbase of the stack once: cluster, the
# stratuslab bucket and its administrator. Scopes, collections and indexes
# are created by the services themselves at start-up.
set -eu
host=couchbase:8091
until curl -fsS "http://$host/pools" >/dev/null; do sleep 2; done
if couchbase-cli server-list -c "$host" -u "$CB_USER" -p "$CB_PASSWORD" >/dev/null 2>&1; then
	echo "couchbase already initialised"
else
	couchbase-cli cluster-init -c "$host" --cluster-username "$CB_USER" --cluster-password "$CB_PASSWORD" \
		--services data,index,query --cluster-ramsize 1024 --cluster-index-ramsize 256
fi
couchbase-cli bucket-create -c "$host" -u "$CB_USER" -p "$CB_PASSWORD" \
	--bucket stratuslab --bucket-type couchbase --bucket-ramsize 512 --wait 2>/dev/null || echo "bucket exists"
