#!/bin/bash
# inferstack user data for prod/steady: rendered from templates/aws_user_data.sh.j2.
#
# Credentials and IMDSv2: the launch template requires IMDSv2 with a hop limit of 1, so a
# container on Docker's bridge network (one hop further) cannot reach the instance role's
# credentials. That is on purpose: everything that needs AWS credentials runs on the host
# (the ECR login, the weights download, the lifecycle calls, the metrics agent, Docker's awslogs
# driver), and the engine runs on the bridge network with no credentials at all, reading the
# weights from a read-only mount.
#
# Why two scripts and a unit: cloud-init runs user data on the first boot only, and a warm-pool
# instance boots twice: once to be prepared and stopped (Warmed:Pending:Wait), once to serve
# (Pending:Wait). The bootstrap below therefore runs at every boot (inferstack-node.service), asks
# the instance metadata where the node is going (autoscaling/target-lifecycle-state), and completes
# the group's launch lifecycle hook (inferstack-ready) itself: after the weights and image are on
# disk for the warm pool, after the engine answers its health check for service. Any failed step
# abandons the launch, so the group replaces the node instead of serving from a broken one.
set -euo pipefail

cat > /usr/local/bin/inferstack-node <<'NODE'
#!/bin/bash
# inferstack bootstrap for prod/steady: weights, image, engine, launch lifecycle hook.
set -euo pipefail
# A copy in a file, the rest to where this runs from: cloud-init's output log at first boot, the
# journal under systemd later (no logger in a pipe: if it went away, SIGPIPE would end the bootstrap).
exec > >(tee -a /var/log/inferstack-bootstrap.log) 2>&1

REGION=eu-central-1
GROUP=assistant-prod-steady
MODEL_DIR=/opt/inferstack/models/llama-3-70b
IMDS=http://169.254.169.254/latest

imds() {
  local token
  token=$(curl -sf --max-time 5 -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/$1"
}

INSTANCE_ID=$(imds instance-id)

lifecycle() {
  aws autoscaling complete-lifecycle-action --region "$REGION" --auto-scaling-group-name "$GROUP" \
    --lifecycle-hook-name inferstack-ready --instance-id "$INSTANCE_ID" --lifecycle-action-result "$1"
}

on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "inferstack: bootstrap failed (exit $rc): abandoning the launch so the group replaces this node"
    lifecycle ABANDON || true
  fi
}
trap on_exit EXIT

# Where this boot leads: InService (serve), or Warmed:Stopped/Running/Hibernated (prepare only).
STATE=""
for _ in $(seq 1 60); do
  STATE=$(imds autoscaling/target-lifecycle-state || true)
  if [ -n "$STATE" ]; then break; fi
  sleep 5
done
echo "inferstack: target lifecycle state '${STATE:-unknown}'"
case "$STATE" in
  InService|Warmed:*) ;;
  *) echo "inferstack: not launching into service or the warm pool"; exit 1 ;;
esac

# 1. Weights, on the host, with the instance role (it can read only this prefix). A warm-pool
#    node that already holds them only compares listings.
mkdir -p "$MODEL_DIR"
aws s3 sync --only-show-errors --region "$REGION" s3://acme-models-eu-central-1/meta-llama/Llama-3.3-70B-Instruct-FP8/ "$MODEL_DIR"

# 1b. The CloudWatch agent (Amazon Linux 2023's package, from its repositories in S3 through the
#     gateway endpoint): the engine's Prometheus series into embedded metric format, and the GPUs'
#     utilisation and memory (nvidia-smi), per Auto Scaling group. Started once the engine serves.
if ! rpm -q amazon-cloudwatch-agent >/dev/null 2>&1; then
  dnf install -y -q amazon-cloudwatch-agent
fi
mkdir -p /opt/aws/amazon-cloudwatch-agent/etc
cat > /opt/aws/amazon-cloudwatch-agent/etc/inferstack.json <<'CWAGENT'
{
  "agent": {
    "metrics_collection_interval": 60,
    "omit_hostname": true
  },
  "logs": {
    "force_flush_interval": 15,
    "metrics_collected": {
      "prometheus": {
        "emf_processor": {
          "metric_declaration": [
            {
              "dimensions": [
                [
                  "AutoScalingGroupName"
                ]
              ],
              "label_matcher": "^engine$",
              "metric_selectors": [
                "^engine_output_tokens$",
                "^engine_requests$",
                "^engine_running$",
                "^engine_waiting$"
              ],
              "source_labels": [
                "job"
              ]
            },
            {
              "dimensions": [
                [
                  "AutoScalingGroupName",
                  "status"
                ]
              ],
              "label_matcher": "^engine;5xx$",
              "metric_selectors": [
                "^engine_requests$"
              ],
              "source_labels": [
                "job",
                "status"
              ]
            }
          ],
          "metric_declaration_dedup": true,
          "metric_namespace": "InferStack"
        },
        "log_group_name": "/inferstack/assistant/prod/steady/metrics",
        "prometheus_config_path": "/opt/aws/amazon-cloudwatch-agent/etc/inferstack-prometheus.yaml"
      }
    }
  },
  "metrics": {
    "aggregation_dimensions": [
      [
        "AutoScalingGroupName"
      ]
    ],
    "metrics_collected": {
      "nvidia_gpu": {
        "append_dimensions": {
          "AutoScalingGroupName": "assistant-prod-steady"
        },
        "measurement": [
          "utilization_gpu",
          "memory_used",
          "memory_total"
        ],
        "metrics_collection_interval": 60
      }
    },
    "namespace": "InferStack"
  }
}
CWAGENT
cat > /opt/aws/amazon-cloudwatch-agent/etc/inferstack-prometheus.yaml <<'CWPROM'
{
  "global": {
    "scrape_interval": "60s",
    "scrape_timeout": "10s"
  },
  "scrape_configs": [
    {
      "job_name": "engine",
      "metrics_path": "/metrics",
      "static_configs": [
        {
          "targets": [
            "127.0.0.1:8000"
          ],
          "labels": {
            "AutoScalingGroupName": "assistant-prod-steady"
          }
        }
      ],
      "metric_relabel_configs": [
        {
          "source_labels": [
            "__name__",
            "handler"
          ],
          "separator": ";",
          "regex": "http_requests_total;/v1/.*",
          "target_label": "__name__",
          "replacement": "engine_requests"
        },
        {
          "source_labels": [
            "__name__"
          ],
          "separator": ";",
          "regex": "vllm:generation_tokens_total",
          "target_label": "__name__",
          "replacement": "engine_output_tokens"
        },
        {
          "source_labels": [
            "__name__"
          ],
          "separator": ";",
          "regex": "vllm:num_requests_running",
          "target_label": "__name__",
          "replacement": "engine_running"
        },
        {
          "source_labels": [
            "__name__"
          ],
          "separator": ";",
          "regex": "vllm:num_requests_waiting",
          "target_label": "__name__",
          "replacement": "engine_waiting"
        },
        {
          "source_labels": [
            "__name__"
          ],
          "regex": "(engine_output_tokens|engine_requests|engine_running|engine_waiting)",
          "action": "keep"
        }
      ]
    }
  ]
}
CWPROM

# 2. Engine image, on the host.
aws ecr get-login-password --region eu-central-1 \
  | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-central-1.amazonaws.com
docker pull 123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a

# A failed completion is not fatal: with no pending action (a serving node that rebooted) there
# is nothing to complete, and a pending one the node cannot reach times out into ABANDON anyway.
if [[ "$STATE" == Warmed:* ]]; then
  lifecycle CONTINUE || echo "inferstack: no launch action to complete"
  echo "inferstack: prepared for the warm pool ($STATE); the engine starts when the node leaves it"
  exit 0
fi

# 3. The engine: every GPU of this instance, tensor parallel across them. The instance types of
#    a mixed fleet differ in GPU count, so it is counted here rather than at plan time.
TENSOR_PARALLEL=$(nvidia-smi --list-gpus | wc -l)
docker rm -f engine >/dev/null 2>&1 || true
docker run --detach --name engine --restart unless-stopped \
  --gpus all --shm-size 16g \
  --security-opt no-new-privileges --cap-drop ALL \
  --read-only --volume inferstack-cache:/cache --tmpfs /tmp:rw,exec,nosuid,nodev,size=16g --env DO_NOT_TRACK=1 --env HF_HOME=/cache/huggingface --env HF_HUB_DISABLE_TELEMETRY=1 --env HF_HUB_OFFLINE=1 --env HOME=/cache --env TORCHINDUCTOR_CACHE_DIR=/cache/inductor --env TRANSFORMERS_OFFLINE=1 --env TRITON_CACHE_DIR=/cache/triton --env VLLM_CACHE_ROOT=/cache/vllm --env VLLM_DO_NOT_TRACK=1 --env VLLM_NO_USAGE_STATS=1 --env XDG_CACHE_HOME=/cache \
  --publish 8000:8000 \
  --volume "$MODEL_DIR":/models/llama-3-70b:ro \
  --log-driver awslogs --log-opt awslogs-region="$REGION" \
  --log-opt awslogs-group=/inferstack/assistant/prod/steady --log-opt awslogs-create-group=false \
  123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a \
  --model /models/llama-3-70b --served-model-name llama-3-70b --host 0.0.0.0 --port 8000 --max-model-len 8192 --tensor-parallel-size "$TENSOR_PARALLEL" --kv-cache-dtype fp8 --enable-prefix-caching

# 4. In service only once the engine answers /health: the launch hook holds the node
#    in Pending:Wait until then (at most 1080 s, the hook's timeout,
#    after which the group abandons it); this loop gives up a little earlier and abandons itself.
healthy=0
for _ in $(seq 1 102); do
  if curl -sf --max-time 5 http://127.0.0.1:8000/health >/dev/null; then
    healthy=1
    break
  fi
  sleep 10
done
if [ "$healthy" -ne 1 ]; then
  echo "inferstack: the engine never became healthy"
  exit 1
fi
echo "inferstack: engine healthy on port 8000"
amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/opt/aws/amazon-cloudwatch-agent/etc/inferstack.json
systemctl start inferstack-agent.service
lifecycle CONTINUE || echo "inferstack: no launch action to complete"
NODE
chmod 0755 /usr/local/bin/inferstack-node

# The agent publishes the autoscaling signal (in_flight) to CloudWatch as
# InferStack/InFlightRequests per Auto Scaling group, and drains the node when it leaves service.
cat > /usr/local/bin/inferstack-agent <<'AGENT'
#!/bin/bash
# inferstack node agent for prod/steady.
# - Publishes only while the node is in service and its engine answers its health check: a
#   booting node would publish 0 and drag the group's average down.
# - When the group takes the node out of service (scale-in, instance refresh, back to the warm
#   pool), waits until the engine has no request in flight (at most 300 s), then
#   completes the termination lifecycle hook (inferstack-drain).
set -uo pipefail

REGION=eu-central-1
GROUP=assistant-prod-steady
IMDS=http://169.254.169.254/latest

imds() {
  local token
  token=$(curl -sf --max-time 5 -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  curl -sf --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/$1"
}

healthy() {
  curl -sf --max-time 5 http://127.0.0.1:8000/health >/dev/null
}

# The sum of the engine's gauges named in the arguments (labels allowed); nothing if none is seen.
gauges() {
  curl -sf --max-time 5 http://127.0.0.1:8000/metrics \
    | awk -v names="$*" 'BEGIN { n = split(names, want, " ") }
        { for (i = 1; i <= n; i++) if ($1 == want[i] || index($1, want[i] "{") == 1) { s += $NF; seen = 1 } }
        END { if (seen) print s }'
}

in_flight() {
  gauges vllm:num_requests_running vllm:num_requests_waiting
}

signal() {
  in_flight
}

publish() {
  aws cloudwatch put-metric-data --region "$REGION" --namespace InferStack \
    --metric-name "$1" --unit "$2" --dimensions "AutoScalingGroupName=$GROUP" --value "$3" || true
}

# The engine's histograms, which the CloudWatch agent drops, as CloudWatch distributions: each
# bucket's count since the last minute at the bucket's upper bound (+Inf at the last finite one),
# so CloudWatch's percentiles are upper bounds of the engine's. A histogram's _sum is published as
# the delta of a counter. A count that went down (the engine restarted) publishes nothing once.
HIST_STATE=/run/inferstack-histograms
mkdir -p "$HIST_STATE"
histogram_deltas() {
  # $1 series, $2 state file: prints "bound count" pairs of the buckets that grew, in bound order.
  local now
  now=$(mktemp)
  awk -v series="$1" '
    index($0, series "_bucket{") == 1 {
      le = $0; sub(/.*le="/, "", le); sub(/".*/, "", le)
      sum[le] += $NF
    }
    END { for (le in sum) print (le == "+Inf" ? "inf" : le), sum[le] }
  ' "$METRICS" | sort -g > "$now"
  if [ -s "$2" ]; then
    awk '
      BEGIN { n = 0 }
      NR == FNR { before[$1] = $2; next }
      {
        grew = $2 - before[$1]
        if (grew < 0) { reset = 1 }
        bound[n] = $1; count[n] = grew; n++
      }
      END {
        if (reset) exit
        prev = 0; last = ""; m = 0
        for (i = 0; i < n; i++) {
          c = count[i] - prev; prev = count[i]
          b = bound[i]
          if (b == "inf") { b = last }
          if (c > 0 && b != "") {
            if (!(b in out)) { order[m++] = b }
            out[b] += c
          }
          if (bound[i] != "inf") last = bound[i]
        }
        for (i = 0; i < m; i++) print order[i], out[order[i]]
      }
    ' "$2" "$now"
  fi
  mv "$now" "$2"
}
counter_delta() {
  # $1 series, $2 state file: the growth of a summed counter since the last call.
  local now before
  now=$(awk -v series="$1" 'index($0, series "{") == 1 || index($0, series " ") == 1 { s += $NF } END { printf "%.6f", s }' "$METRICS")
  before=$(cat "$2" 2>/dev/null || true)
  echo "$now" > "$2"
  if [ -n "$before" ]; then awk -v a="$now" -v b="$before" 'BEGIN { if (a >= b) printf "%.6f", a - b }'; fi
}
publish_histograms() {
  METRICS=$(mktemp)
  if ! curl -sf --max-time 10 http://127.0.0.1:8000/metrics > "$METRICS"; then
    rm -f "$METRICS"
    return
  fi
  local pairs values counts
  pairs=$(histogram_deltas vllm:e2e_request_latency_seconds "$HIST_STATE/request_latency_seconds")
  if [ -n "$pairs" ]; then
    values=$(echo "$pairs" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $1 }')
    counts=$(echo "$pairs" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 }')
    # shellcheck disable=SC2086 # one argument per value and per count
    aws cloudwatch put-metric-data --region "$REGION" --namespace InferStack \
      --metric-name request_latency_seconds --unit Seconds --dimensions "AutoScalingGroupName=$GROUP" \
      --values $values --counts $counts || true
  fi
  local pairs values counts
  pairs=$(histogram_deltas vllm:time_to_first_token_seconds "$HIST_STATE/time_to_first_token_seconds")
  if [ -n "$pairs" ]; then
    values=$(echo "$pairs" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $1 }')
    counts=$(echo "$pairs" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 }')
    # shellcheck disable=SC2086 # one argument per value and per count
    aws cloudwatch put-metric-data --region "$REGION" --namespace InferStack \
      --metric-name time_to_first_token_seconds --unit Seconds --dimensions "AutoScalingGroupName=$GROUP" \
      --values $values --counts $counts || true
  fi
  rm -f "$METRICS"
}

drain() {
  echo "inferstack-agent: leaving service ($1): draining"
  local n
  for _ in $(seq 1 60); do
    n=$(in_flight)
    if [ "${n:-0}" = 0 ]; then break; fi
    sleep 5
  done
  aws autoscaling complete-lifecycle-action --region "$REGION" --auto-scaling-group-name "$GROUP" \
    --lifecycle-hook-name inferstack-drain --instance-id "$INSTANCE_ID" --lifecycle-action-result CONTINUE || true
}

INSTANCE_ID=$(imds instance-id)
served=0
tick=0
while true; do
  state=$(imds autoscaling/target-lifecycle-state || true)
  if [ "$served" = 1 ] && [ -n "$state" ] && [ "$state" != InService ]; then
    drain "$state"
    exit 0
  fi
  if [ "$state" = InService ] && healthy; then
    served=1
    value=$(signal)
    if [ -n "$value" ]; then publish InFlightRequests Count "$value"; fi
    if [ $((tick % 4)) = 0 ]; then publish_histograms; fi
    tick=$((tick + 1))
  fi
  sleep 15
done
AGENT
chmod 0755 /usr/local/bin/inferstack-agent

cat > /etc/systemd/system/inferstack-node.service <<'UNIT'
[Unit]
Description=inferstack: bootstrap this node at every boot (warm-pool nodes boot again to serve)
Wants=network-online.target
After=network-online.target docker.service cloud-final.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/inferstack-node
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/inferstack-agent.service <<'UNIT'
[Unit]
Description=inferstack: publish the autoscaling signal and drain before termination
After=docker.service
[Service]
ExecStart=/usr/local/bin/inferstack-agent
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable inferstack-node.service inferstack-agent.service

# This first boot: run the bootstrap now (the unit takes over from the next boot on).
exec /usr/local/bin/inferstack-node
