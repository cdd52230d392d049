#!/bin/sh
# reaper's resource handler (docs/resource-protocol.md) for ConfigMaps that preview
# environments leave behind. Documented, not run by the tests: it needs a cluster.
#
# list:   kubectl get … -o json, one record per ConfigMap; the fingerprint is the object's
#         resourceVersion, which changes on every write; one page (kubectl hides its own paging).
# delete: a DELETE with preconditions.resourceVersion, sent to the API server (from inside the
#         cluster, with the pod's service account): 200 deleted, 409 Conflict changed, 404 absent.
#         This is what `kubectl delete --precondition` would be, if kubectl had it.
# Needs kubectl, curl and jq. SELECTOR picks the objects (the scope).
set -eu
SELECTOR="${SELECTOR:-app.kubernetes.io/managed-by=preview-envs}"
SA=/var/run/secrets/kubernetes.io/serviceaccount
API="${KUBE_API:-https://kubernetes.default.svc}"

case "$REAPER_OP" in
list)
  kubectl get configmaps --all-namespaces -l "$SELECTOR" -o json | jq -c '
    .items[] | {
      id: "\(.metadata.namespace)/\(.metadata.name)",
      fingerprint: .metadata.resourceVersion,
      createdAt: .metadata.creationTimestamp,
      attributes: ({ env: (.metadata.labels["preview-env"] // "") }
        + (if .metadata.annotations["reaper/keep"] == "true" then { keep: "true" } else {} end))
    }'
  echo '{"next":null}'
  ;;
delete)
  while IFS= read -r line; do
    id=$(printf '%s' "$line" | jq -r .id)
    version=$(printf '%s' "$line" | jq -r .fingerprint)
    ns=${id%%/*} name=${id#*/}
    status=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$SA/ca.crt" \
      -H "Authorization: Bearer $(cat "$SA/token")" -H 'Content-Type: application/json' \
      -X DELETE -d "{\"preconditions\":{\"resourceVersion\":\"$version\"}}" \
      "$API/api/v1/namespaces/$ns/configmaps/$name") || status=000
    case "$status" in
      200|202) result='"result":"deleted"' ;;
      409) result='"result":"changed"' ;;
      404) result='"result":"absent"' ;;
      *) result="\"result\":\"error\",\"message\":\"API server answered HTTP $status\"" ;;
    esac
    printf '{"id":%s,%s}\n' "$(printf '%s' "$id" | jq -R .)" "$result"
  done
  ;;
*)
  echo "unknown operation $REAPER_OP" >&2
  exit 2
  ;;
esac
