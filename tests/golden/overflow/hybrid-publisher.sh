#!/bin/bash
# Rendered by inferstack (templates/overflow_publisher.sh.j2): do not edit, change the spec.
# Every 10 s: read Envoy's stats, hold or clear the trigger, set overflow.active, write each
# burst target's wake metric. Never logs a token or a key; never exits on a failed call.
set -euo pipefail
umask 077

ADMIN=http://127.0.0.1:9901
IDENTITY=/etc/inferstack/identity/identity.json
CLIENT_TLS=/etc/inferstack/client-tls
GCP_TOKEN=/var/run/secrets/inferstack/gcp/token
CYCLE=10
HOLD=3
STEP=10
REPLICAS=2
PENDING=32
P95_MS=
PRIMARY_UNHEALTHY=1
LOCAL=local
POD=${POD_NAME:-${HOSTNAME:-overflow-gateway}}
WORK=$(mktemp -d /tmp/publisher.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# The burst targets in order of preference: name, cloud, Envoy cluster, whether a metric wakes it.
NAMES=(aws-burst gcp-burst)
CLUSTERS=(burst-aws-burst burst-gcp-burst)
WAKES=(1 1)

log() { echo "overflow-publisher: $*" >&2; }

# -- Envoy --------------------------------------------------------------------------------------------
read_envoy() {
  curl -sf --max-time 2 -G "$ADMIN/stats" --data-urlencode format=json \
    --data-urlencode 'filter=^cluster\.(local|burst-aws-burst|burst-gcp-burst)\.(upstream_rq_pending_active|membership_healthy|upstream_rq_time)$' \
    > "$WORK/stats.json"
}

# envoy_stat NAME: a counter's or gauge's value; 0 when Envoy has not reported it.
envoy_stat() {
  jq -r --arg n "$1" '[.stats[]? | select(.name? == $n) | .value] | first // 0' "$WORK/stats.json"
}

# The primary's p95 request time (ms) over Envoy's last stats interval; nothing without samples.
p95_ms() {
  jq -r --arg n "cluster.$LOCAL.upstream_rq_time" '
    [.stats[]? | .histograms? // empty | (.supported_quantiles | index(95)) as $i | select($i != null)
     | .computed_quantiles[]? | select(.name == $n) | .values[$i].interval // empty] | first // empty' \
    "$WORK/stats.json"
}

# Requests waiting on the primary: the engines' own queues (each engine Envoy resolved, on its
# metrics path) plus what Envoy holds for the primary itself.
waiting_on_primary() {
  local total=0
  local hosts host v
  hosts=$(curl -sf --max-time 2 -G "$ADMIN/clusters" --data-urlencode format=json \
    | jq -r --arg c "$LOCAL" '.cluster_statuses[]? | select(.name == $c) | .host_statuses[]?
        | .address.socket_address | "\(.address):\(.port_value)"') || hosts=""
  for host in $hosts; do
    v=$(curl -sf --max-time 2 "http://$host/metrics" \
      | awk -v name=vllm:num_requests_waiting '$1 == name || index($1, name "{") == 1 { s += $NF }
          END { printf "%d", s + 0.5 }') || v=0
    total=$(( total + ${v:-0} ))
  done
  echo $(( total + $(envoy_stat "cluster.$LOCAL.upstream_rq_pending_active") ))
}

# -- identities (re-read every cycle: a change needs no restart) ----------------------------------------
# identity CLOUD TARGET PATH...: one string of identity.json, or failure.
identity() {
  local cloud=$1 target=$2
  shift 2
  [ -r "$IDENTITY" ] || return 1
  jq -er --arg c "$cloud" --arg t "$target" '.[$c][$t] | getpath($ARGS.positional) | strings' \
    "$IDENTITY" --args "$@" 2>/dev/null
}

# publish_aws TARGET REGION NAMESPACE METRIC GROUP VALUE: one point, as the Roles Anywhere role.
publish_aws() {
  local target=$1 region=$2 anchor profile role cfg
  [ "$6" -gt 0 ] || return 0
  if ! anchor=$(identity aws "$target" trustAnchorArn) || ! profile=$(identity aws "$target" profileArn) \
    || ! role=$(identity aws "$target" roleArn); then
    log "no AWS identity for $target in $IDENTITY yet: its wake metric is not written"
    return 0
  fi
  region=$(identity aws "$target" region || echo "$region")
  # The values land in a config file: only well-formed ARNs and regions.
  if ! [[ $anchor =~ ^arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:trust-anchor/[A-Za-z0-9-]+$ ]] \
    || ! [[ $profile =~ ^arn:aws[a-z-]*:rolesanywhere:[a-z0-9-]+:[0-9]{12}:profile/[A-Za-z0-9-]+$ ]] \
    || ! [[ $role =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9/+=,.@_-]+$ ]] \
    || ! [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]]; then
    log "the AWS identity of $target in $IDENTITY is malformed: its wake metric is not written"
    return 0
  fi
  cfg="$WORK/aws-$target.config"
  cat > "$cfg" <<CONFIG
[profile $target]
region = $region
credential_process = aws_signing_helper credential-process --certificate $CLIENT_TLS/tls.crt --private-key $CLIENT_TLS/tls.key --trust-anchor-arn $anchor --profile-arn $profile --role-arn $role --region $region
CONFIG
  # The regional name resolves to the fleet VPC's interface endpoint (the site forwards it to the
  # link's Route 53 Resolver inbound endpoint); stated, so the CLI never picks another endpoint.
  AWS_CONFIG_FILE=$cfg AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PROFILE=$target AWS_EC2_METADATA_DISABLED=true \
    aws cloudwatch put-metric-data --region "$region" --endpoint-url "https://monitoring.$region.amazonaws.com" \
      --namespace "$3" --metric-name "$4" --dimensions "AutoScalingGroupName=$5" --value "$6" --unit Count \
    || log "CloudWatch refused $4 for $target"
}

# gcp_auth TARGET: an Authorization header in $WORK/gcp-TARGET.auth, traded at Google's STS for the
# pod's projected token (and for a service account's token when the identity impersonates one);
# kept until a minute before it expires. Tokens go to files and curl reads them there: none is in
# an argument list or in the log.
gcp_auth() {
  local target=$1 auth="$WORK/gcp-$1.auth" expires="$WORK/gcp-$1.expires" now audience impersonate lifetime
  now=$(date +%s)
  if [ -s "$auth" ] && [ "$(cat "$expires")" -gt $(( now + 60 )) ]; then return 0; fi
  if ! audience=$(identity gcp "$target" credentialConfig audience); then
    log "no GCP identity for $target in $IDENTITY yet: its wake metric is not written"
    return 1
  fi
  if ! [[ $audience =~ ^//iam\.googleapis\.com/projects/[0-9]+/locations/global/workloadIdentityPools/[a-z0-9-]+/providers/[a-z0-9-]+$ ]]; then
    log "the GCP identity of $target in $IDENTITY has a malformed audience: its wake metric is not written"
    return 1
  fi
  impersonate=$(identity gcp "$target" credentialConfig service_account_impersonation_url || true)
  if [ -n "$impersonate" ] && ! [[ $impersonate =~ ^https://iamcredentials\.googleapis\.com/v1/projects/-/serviceAccounts/[^/[:space:]]+:generateAccessToken$ ]]; then
    log "the GCP identity of $target impersonates through an unexpected URL: its wake metric is not written"
    return 1
  fi
  if [ ! -r "$GCP_TOKEN" ]; then
    log "no projected service-account token at $GCP_TOKEN: $target's wake metric is not written"
    return 1
  fi
  if ! curl -sf --max-time 10 -X POST https://sts.googleapis.com/v1/token \
    --data-urlencode grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
    --data-urlencode "audience=$audience" \
    --data-urlencode scope=https://www.googleapis.com/auth/cloud-platform \
    --data-urlencode requested_token_type=urn:ietf:params:oauth:token-type:access_token \
    --data-urlencode subject_token_type=urn:ietf:params:oauth:token-type:jwt \
    --data-urlencode "subject_token@$GCP_TOKEN" > "$WORK/sts.json" \
    || ! jq -er '"Authorization: Bearer " + .access_token' "$WORK/sts.json" > "$auth.new"; then
    log "Google's STS refused the token exchange for $target"
    rm -f "$WORK/sts.json" "$auth.new"
    return 1
  fi
  lifetime=$(jq -r '.expires_in // 3600 | floor' "$WORK/sts.json")
  rm -f "$WORK/sts.json"
  if [ -n "$impersonate" ]; then
    if ! curl -sf --max-time 10 -X POST -H @"$auth.new" -H 'Content-Type: application/json' \
      -d '{"scope": ["https://www.googleapis.com/auth/cloud-platform"]}' "$impersonate" > "$WORK/sa.json" \
      || ! jq -er '"Authorization: Bearer " + .accessToken' "$WORK/sa.json" > "$auth.sa"; then
      log "IAM refused the service account's token for $target"
      rm -f "$WORK/sa.json" "$auth.new" "$auth.sa"
      return 1
    fi
    rm -f "$WORK/sa.json"
    mv "$auth.sa" "$auth.new"
    lifetime=3600  # generateAccessToken's default lifetime
  fi
  mv "$auth.new" "$auth"
  echo $(( now + lifetime )) > "$expires"
}

# publish_gcp TARGET PROJECT METRIC GROUP RESOURCE VALUE: one point of the group's series, as the
# node agents write it (templates/gcp_startup.sh.j2), this pod's name as the instance.
publish_gcp() {
  local body
  gcp_auth "$1" || return 0
  body=$(jq -cn --arg type "$3" --arg group "$4" --arg instance "$POD" --arg resource "$5" --arg project "$2" \
    --arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson value "$6" \
    '{timeSeries: [{metric: {type: $type, labels: {group: $group, instance: $instance}}, metricKind: "GAUGE",
      valueType: "DOUBLE", resource: {type: $resource, labels: {project_id: $project}},
      points: [{interval: {endTime: $now}, value: {doubleValue: $value}}]}]}')
  curl -sf --max-time 10 -X POST -H @"$WORK/gcp-$1.auth" -H 'Content-Type: application/json' \
    --data "$body" "https://monitoring.googleapis.com/v3/projects/$2/timeSeries" >/dev/null \
    || log "Cloud Monitoring refused $3 for $1"
}

# publish INDEX VALUE: the wake metric of one burst target.
publish() {
  case "${NAMES[$1]}" in
    aws-burst)
      publish_aws aws-burst eu-central-1 InferStack PendingRequests assistant-hybrid-aws-burst "$2";;
    gcp-burst)
      publish_gcp gcp-burst acme-ml-prod custom.googleapis.com/inferstack/in_flight_requests assistant-hybrid-gcp-burst-zcb22 global "$2";;
    *) ;;
  esac
}

# A leaving pod's series say 0 (the GCP autoscaler sums them; AWS's alarm needs no last word).
leave() {
  trap - TERM INT
  publish_gcp gcp-burst acme-ml-prod custom.googleapis.com/inferstack/in_flight_requests assistant-hybrid-gcp-burst-zcb22 global 0 || true
  exit 0
}
trap leave TERM INT

held=0
clear=0
firing=0
applied=""
log "started: trigger ${PENDING:+waiting > $PENDING, }${P95_MS:+p95 > $P95_MS ms, }primary unhealthy=$PRIMARY_UNHEALTHY, held $HOLD cycles of $CYCLE s"
while true; do
  if ! read_envoy; then
    log "Envoy's admin does not answer yet: nothing decided this cycle"
    sleep "$CYCLE"
    continue
  fi
  waiting=$(waiting_on_primary)
  healthy_local=$(envoy_stat "cluster.$LOCAL.membership_healthy")
  p95=$(p95_ms)
  why=""
  if [ -n "$PENDING" ] && [ "$waiting" -gt "$PENDING" ]; then why="$waiting requests waiting"; fi
  if [ -n "$P95_MS" ] && [ -n "$p95" ] && awk -v a="$p95" -v b="$P95_MS" 'BEGIN { exit !(a > b) }'; then
    why="${why:+$why, }p95 ${p95} ms"
  fi
  if [ "$PRIMARY_UNHEALTHY" = 1 ] && [ "$healthy_local" = 0 ]; then why="${why:+$why, }no healthy primary"; fi
  if [ -n "$why" ]; then held=$(( held + 1 )); clear=0; else clear=$(( clear + 1 )); held=0; fi
  if [ "$firing" = 0 ] && [ "$held" -ge "$HOLD" ]; then firing=1; log "trigger fired: $why"; fi
  if [ "$firing" = 1 ] && [ "$clear" -ge "$HOLD" ]; then firing=0; log "trigger cleared"; fi

  healthy=()
  any_healthy=0
  for i in "${!NAMES[@]}"; do
    healthy[i]=$(envoy_stat "cluster.${CLUSTERS[$i]}.membership_healthy")
    if [ "${healthy[$i]}" -gt 0 ]; then any_healthy=1; fi
  done
  # The share of allowed requests sent to the clouds: up a step each cycle the primary is still
  # pressed, down a step when it is not (never below one step while the trigger holds), all at
  # once when the primary has no healthy replica; 0 when the trigger clears or no cloud serves.
  want=0
  if [ ! -r "$IDENTITY" ]; then
    log "no identity file at $IDENTITY yet (the stack writes it after the identities exist): overflow stays off"
  elif [ "$firing" = 1 ] && [ "$any_healthy" = 1 ]; then
    current=${applied:-0}
    if [ "$PRIMARY_UNHEALTHY" = 1 ] && [ "$healthy_local" = 0 ]; then
      want=100
    elif [ -n "$why" ]; then
      want=$(( current + STEP > 100 ? 100 : current + STEP ))
    else
      want=$(( current - STEP < STEP ? STEP : current - STEP ))
    fi
  fi
  if [ "$want" != "$applied" ]; then
    if curl -sf --max-time 2 -X POST "$ADMIN/runtime_modify?overflow.active=$want" >/dev/null; then
      applied=$want
      log "overflow.active=$want"
    else
      log "Envoy refused overflow.active=$want: tried again next cycle"
    fi
  fi

  # The demand goes to the first target, in order of preference, that is healthy or can be woken.
  demand=0
  if [ "$firing" = 1 ]; then
    excess=$(( waiting - ${PENDING:-0} ))
    if [ "$excess" -lt 1 ]; then excess=1; fi
    demand=$(( (excess + REPLICAS - 1) / REPLICAS ))
  fi
  chosen=-1
  for i in "${!NAMES[@]}"; do
    if [ "${healthy[$i]}" -gt 0 ] || [ "${WAKES[$i]}" = 1 ]; then chosen=$i; break; fi
  done
  for i in "${!NAMES[@]}"; do
    if [ "${WAKES[$i]}" = 1 ]; then
      if [ "$i" = "$chosen" ]; then publish "$i" "$demand"; else publish "$i" 0; fi
    fi
  done
  sleep "$CYCLE"
done
