#!/bin/bash
# inferstack user data for prod/burst: rendered from templates/aws_user_data.sh.j2.
#
# Credentials and IMDSv2: the launch template requires IMDSv2 with a hop limit of 1, so a
# container on Docker's bridge network (one hop further) cannot reach the instance role's
# credentials. That is on purpose: everything that needs AWS credentials runs on the host
# (the ECR login, the weights download, the metrics agent, Docker's awslogs driver), and the
# engine runs on the bridge network with no credentials at all, reading the weights from a
# read-only mount.
set -euo pipefail
exec > >(tee -a /var/log/inferstack-bootstrap.log | logger -t inferstack-bootstrap) 2>&1

REGION=eu-central-1
MODEL_DIR=/opt/inferstack/models/llama-3-70b

# 1. Weights, on the host, with the instance role (it can read only this prefix).
mkdir -p "$MODEL_DIR"
aws s3 sync --only-show-errors --region "$REGION" s3://acme-models-eu-central-1/meta-llama/Llama-3.3-70B-Instruct-FP8/ "$MODEL_DIR"

# 2. Engine image, on the host.
aws ecr get-login-password --region eu-central-1 \
  | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-central-1.amazonaws.com
docker pull 123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a

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
  --log-opt awslogs-group=/inferstack/assistant/prod/burst --log-opt awslogs-create-group=false \
  123456789012.dkr.ecr.eu-central-1.amazonaws.com/vllm-openai@sha256:0d4c8d8bd1b4dbbd4ec0a02c4ec7c2fa4f2e3db0e8ee7c1d9b3a1f0e5d6c7b8a \
  --model /models/llama-3-70b --served-model-name llama-3-70b --host 0.0.0.0 --port 8000 --max-model-len 8192 --tensor-parallel-size "$TENSOR_PARALLEL" --enable-prefix-caching --kv-cache-dtype fp8

# 4. Health and metrics: the engine serves /health and /metrics
#    on port 8000. The agent below publishes the autoscaling signal (queue_depth)
#    to CloudWatch as InferStack/PendingRequests per Auto Scaling group.
cat > /usr/local/bin/inferstack-metrics <<'AGENT'
#!/bin/bash
set -uo pipefail
while true; do
  value=$(curl -sf --max-time 5 http://127.0.0.1:8000/metrics \
    | awk -v m=vllm:num_requests_waiting \
        '$1 == m || index($1, m "{") == 1 { s += $NF; seen = 1 } END { if (seen) print s }')
  if [ -n "$value" ]; then
    aws cloudwatch put-metric-data --region eu-central-1 --namespace InferStack \
      --metric-name PendingRequests --unit Count \
      --dimensions AutoScalingGroupName=assistant-prod-burst --value "$value" || true
  fi
  sleep 15
done
AGENT
chmod 0755 /usr/local/bin/inferstack-metrics

cat > /etc/systemd/system/inferstack-metrics.service <<'UNIT'
[Unit]
Description=inferstack: publish the autoscaling signal to CloudWatch
After=docker.service
[Service]
ExecStart=/usr/local/bin/inferstack-metrics
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now inferstack-metrics.service

# 5. Ready when the engine answers its health check; the Auto Scaling group's grace period
#    covers the download and load above.
until curl -sf --max-time 5 http://127.0.0.1:8000/health >/dev/null; do sleep 10; done
echo "inferstack: engine healthy on port 8000"
