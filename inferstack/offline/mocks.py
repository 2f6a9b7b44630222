"""Mocks that stand in for the Pulumi engine and the cloud providers, offline.

`RecordingMonitor` receives every register-resource request the program sends, as the real
engine's resource monitor would, and records what a reviewer needs: type, name, parent,
provider, inputs and options. `CloudMocks` answers the data sources the program calls (account
identity, zones, AMI parameters, existing VPCs) and gives each new resource the computed outputs
its dependents read (ARNs, ids, latest versions), all derived from the resource's URN so that
the same spec always yields the same plan.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings

MOCK_ACCOUNT = "123456789012"
MOCK_PROJECT = "offline-project"
SECRET = "[secret]"
_SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"


@dataclass
class GcpWorld:
    """What the GCP lookups find offline. By default every bucket has uniform bucket-level access
    and no existing network has a proxy-only subnet; tests change it to play the other cases."""

    buckets_without_uniform_access: set[str] = field(default_factory=set)
    # (project, region) -> existing subnetworks: dicts of name, network, ipCidrRange, purpose, role
    subnetworks: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)


GCP_WORLD = GcpWorld()


class MissingMockError(RuntimeError):
    """The program called a data source the offline engine cannot answer: a bug to fix here."""


# Roles an offline account already has, by the name regex a lookup sends (tests may add some).
EXISTING_ROLES: dict[str, list[str]] = {}


def _zone_ids(region: str) -> list[str]:
    """AZ IDs as AWS writes them (euc1-az1): short region code, then the zone number."""
    parts = region.split("-")
    return [f"{parts[0]}{parts[1][0]}{parts[-1]}-az{i}" for i in (1, 2, 3)]


def _digest(*parts: str, n: int = 17) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:n]


# Physical-id prefixes, as the clouds write them, so a plan reads like the real thing.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:ec2/flowLog:FlowLog": "fl-",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr-",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr-",
    "aws:ec2/customerGateway:CustomerGateway": "cgw-",
    "aws:ec2/vpnGateway:VpnGateway": "vgw-",
    "aws:ec2/vpnConnection:VpnConnection": "vpn-",
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": "tgw-attach-",
    "aws:route53/resolverEndpoint:ResolverEndpoint": "rslvr-in-",
}


def clean(value: Any) -> Any:
    """Property values as a plan shows them: secrets masked (never in clear), and whole numbers
    as integers (the wire format carries every number as a double)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == rpc._special_secret_sig:
            return SECRET
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class CloudMocks(pulumi_mocks.Mocks):
    """Answers data sources and computes outputs; knows each provider's region."""

    def __init__(self) -> None:
        self.provider_regions: dict[str, str] = {}  # provider URN -> region
        # aws.iam.get_roles answers: name regex -> role names that exist (tests set it)
        self.existing_roles: dict[str, list[str]] = dict(EXISTING_ROLES)
        self.calls: list[tuple[str, dict]] = []  # every data source the program asked, in order

    def region_of(self, provider_ref: str | None) -> str:
        """Provider references are "<urn>::<id>"; every resource here has an explicit provider."""
        urn = provider_ref.rsplit("::", 1)[0] if provider_ref else ""
        return self.provider_regions.get(urn, "unknown-region")

    # -- resources ----------------------------------------------------------------------------

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider", inputs
        if typ.startswith("kubernetes:"):
            return self._kubernetes_resource(typ, name, inputs)
        region = self.region_of(args.provider)
        uid = _digest(typ, name, region)
        if typ == "random:index/randomPassword:RandomPassword":
            # Offline nothing secret is generated: a fixed placeholder of the asked length, which the
            # program must still carry as a secret (plans mask it).
            return f"{name}-{uid[:7]}", {**inputs, "result": "x" * int(inputs.get("length", 16))}
        if typ == "random:index/randomId:RandomId":
            # Not a secret: a fixed stand-in of the asked length, in each encoding the resource offers.
            raw = bytes.fromhex(_digest(uid, n=2 * int(inputs.get("byteLength", 4))))
            hexed = raw.hex()
            b64 = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            return hexed, {
                **inputs,
                "hex": hexed,
                "b64Url": b64,
                "b64Std": base64.b64encode(raw).decode(),
                "dec": str(int(hexed, 16)),
                "id": b64,
            }
        rid = _ID_PREFIX.get(typ, "") + uid
        module, _, kind = typ.partition(":")[2].partition(":")
        service = module.split("/")[0]
        state = dict(inputs)
        state.setdefault("name", f"{name}-{uid[:7]}")
        if typ == "aws:kms/key:Key":
            h = _digest(uid, n=32)
            rid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            state["keyId"] = rid
            state["arn"] = f"arn:aws:kms:{region}:{MOCK_ACCOUNT}:key/{rid}"
        elif typ.startswith("aws:iam/"):
            state["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT}:{kind[0].lower() + kind[1:]}/{state['name']}"
        elif service == "rolesanywhere":
            # arn:aws:rolesanywhere:<region>:<account>:trust-anchor/<uuid> (and profile/<uuid>).
            h = _digest(uid, n=32)
            rid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            state["arn"] = (
                f"arn:aws:rolesanywhere:{region}:{MOCK_ACCOUNT}:{'trust-anchor' if kind == 'TrustAnchor' else 'profile'}/{rid}"
            )
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{region}:{MOCK_ACCOUNT}:log-group:{state['name']}"
        elif typ == "aws:autoscaling/group:Group":
            rid = state["name"]
            state["arn"] = (
                f"arn:aws:autoscaling:{region}:{MOCK_ACCOUNT}:autoScalingGroup:{uid}:autoScalingGroupName/{rid}"
            )
        else:
            state["arn"] = f"arn:aws:{service}:{region}:{MOCK_ACCOUNT}:{kind[0].lower() + kind[1:]}/{rid}"
        if typ.startswith("gcp:"):
            return self._gcp_resource(typ, name, uid, state, region)
        if typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
        if typ == "aws:ec2/vpcEndpoint:VpcEndpoint" and inputs.get("vpcEndpointType") == "Interface":
            state["dnsEntries"] = [
                {"dnsName": f"{rid}.vpce-svc.{region}.vpce.amazonaws.com", "hostedZoneId": "Z0OFFLINE"}
            ]
        if typ == "aws:ec2/vpcEndpointService:VpcEndpointService":
            state["serviceName"] = f"com.amazonaws.vpce.{region}.vpce-svc-{uid}"
        if typ == "aws:route53/zone:Zone":
            rid = state["zoneId"] = "Z" + uid.upper()
        if typ == "aws:lb/loadBalancer:LoadBalancer":
            state["dnsName"] = f"{state['name']}-{uid[:10]}.elb.{region}.amazonaws.com"
            # the LoadBalancer dimension of AWS/NetworkELB metrics: net/<name>/<id>
            state["arnSuffix"] = (
                f"{'net' if inputs.get('loadBalancerType') == 'network' else 'app'}/{state['name']}/{uid[:16]}"
            )
        if typ == "aws:lb/loadBalancer:LoadBalancer":
            state["zoneId"] = "Z0OFFLINENLB"
        if typ == "aws:ec2/vpnConnection:VpnConnection":
            state.update(self._vpn_connection(inputs, uid))
        if typ == "aws:route53/resolverEndpoint:ResolverEndpoint":
            # The service picks a free address in each subnet; offline, stand-ins from TEST-NET-1
            # (RFC 5737), which no real VPC holds, so nobody mistakes them for the real ones.
            state["ipAddresses"] = [
                {**ip, "ip": ip.get("ip") or f"192.0.2.{10 + i}", "ipId": f"rni-{_digest(uid, str(i), n=17)}"}
                for i, ip in enumerate(inputs.get("ipAddresses") or [])
            ]
            state["hostVpcId"] = "vpc-offline"
        if typ == "aws:ec2/vpcEndpoint:VpcEndpoint" and inputs.get("vpcEndpointType") == "Gateway":
            state["prefixListId"] = "pl-" + _digest("prefix-list", inputs.get("serviceName", ""), n=8)
        return rid, state

    @staticmethod
    def _vpn_connection(inputs: dict, uid: str) -> dict:
        """A VPN connection's tunnel outside addresses (AWS picks two public ones; offline, stand-ins
        from TEST-NET-3, RFC 5737) and each tunnel's inside addresses as AWS reports them."""
        out: dict[str, Any] = {}
        for t in (1, 2):
            out[f"tunnel{t}Address"] = f"203.0.113.{int(_digest(uid, str(t), n=4), 16) % 250 + 1}"
            cidr = inputs.get(f"tunnel{t}InsideCidr")
            if cidr:
                hosts = list(ipaddress.IPv4Network(cidr).hosts())
                out[f"tunnel{t}VgwInsideAddress"] = str(hosts[0])
                out[f"tunnel{t}CgwInsideAddress"] = str(hosts[1])
        return out

    def _gcp_resource(self, typ: str, name: str, uid: str, state: dict, region: str) -> tuple[str, dict]:
        """GCP outputs dependents read: self links, ids, service account emails, key ids."""
        project = state.get("project", MOCK_PROJECT)
        state.pop("arn", None)
        kind = typ.rsplit(":", 1)[1]
        collection = kind[0].lower() + kind[1:] + "s"
        if typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{state['accountId']}@{project}.iam.gserviceaccount.com"
            rid = f"projects/{project}/serviceAccounts/{state['email']}"
            state["name"] = rid  # the account's resource name, as IAM bindings on it take it
        elif typ == "gcp:kms/keyRing:KeyRing":
            rid = f"projects/{project}/locations/{state['location']}/keyRings/{state['name']}"
        elif typ == "gcp:kms/cryptoKey:CryptoKey":
            rid = f"{state['keyRing']}/cryptoKeys/{state['name']}"
        else:
            scope = f"regions/{state['region']}" if "region" in state else "global"
            rid = f"projects/{project}/{scope}/{collection}/{state['name']}"
        state["selfLink"] = f"https://www.googleapis.com/compute/v1/{rid}"
        if typ == "gcp:tpu/v2Vm:V2Vm":
            octets = [int(uid[i : i + 2], 16) for i in (0, 2)]
            state["networkEndpoints"] = [{"ipAddress": f"10.{octets[0] % 256}.{octets[1] % 256}.2", "port": 8470}]
        if typ == "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager":
            state["instanceGroup"] = f"{state['selfLink'].rsplit('/', 2)[0]}/instanceGroups/{state['name']}"
        if typ == "gcp:compute/address:Address":
            state["address"] = f"10.{int(uid[:2], 16)}.{int(uid[2:4], 16)}.20"
        if typ == "gcp:compute/haVpnGateway:HaVpnGateway":
            # Google allocates one public address per interface; offline, documentation addresses
            # (RFC 5737 TEST-NET-3), derived from the URN like every other mock output.
            state["vpnInterfaces"] = [
                {"id": i, "ipAddress": f"203.0.113.{int(uid[i * 2 : i * 2 + 2], 16) % 250 + 1}"} for i in (0, 1)
            ]
        if typ == "gcp:compute/forwardingRule:ForwardingRule" and "ipAddress" not in state:
            state["ipAddress"] = f"10.{int(uid[:2], 16)}.{int(uid[2:4], 16)}.10"
        if typ == "gcp:compute/instanceTemplate:InstanceTemplate":
            state["selfLinkUnique"] = f"{state['selfLink']}?uniqueId={int(uid[:12], 16)}"
        return rid, state

    @staticmethod
    def _kubernetes_resource(typ: str, name: str, inputs: dict) -> tuple[str, dict]:
        """Kubernetes objects echo their inputs, with the id the provider gives them ("<namespace>/
        <name>", or the name of a cluster-scoped object) and the uid the API server would; a Helm
        release reports itself deployed, as the provider's `status` output does."""
        state = dict(inputs)
        if typ == "kubernetes:helm.sh/v3:Release":
            namespace = inputs.get("namespace") or "default"
            state["status"] = {
                "name": inputs.get("name", name),
                "namespace": namespace,
                "chart": inputs.get("chart"),
                "version": inputs.get("version"),
                "revision": 1,
                "status": "deployed",
            }
            return f"{namespace}/{inputs.get('name', name)}", state
        meta = dict(inputs.get("metadata") or {})
        h = _digest(typ, name, n=32)
        meta.setdefault("uid", f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
        state["metadata"] = meta
        rid = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name", name))
        return rid, state

    # -- data sources -------------------------------------------------------------------------

    # The SDK accepts a bare dict (no secret paths) besides the tuple its signature names.
    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:  # type: ignore[override]
        region = self.region_of(args.provider)
        token, a = args.token, args.args
        self.calls.append((token, dict(a)))
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": MOCK_ACCOUNT,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/offline",
                "userId": "AIDAOFFLINE",
                "id": MOCK_ACCOUNT,
            }
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{region}{z}" for z in "abc"]
            return {"names": names, "zoneIds": _zone_ids(region), "id": region}
        if token == "aws:iam/getRoles:getRoles":
            # A fresh account: no role matches, so the program shows what it would create.
            found = self.existing_roles.get(a.get("nameRegex", ""), [])
            return {
                "arns": [f"arn:aws:iam::{MOCK_ACCOUNT}:role{a.get('pathPrefix', '/')}{n}" for n in found],
                "names": found,
                "id": region,
            }
        if token == "aws:ec2/getSubnet:getSubnet":
            # The real lookup returns the subnet's zone; offline every named subnet is a stand-in
            # in the region's first zone, which every fleet uses.
            return {
                "id": a.get("id"),
                "availabilityZoneId": _zone_ids(region)[0],
                "availabilityZone": f"{region}a",
                "vpcId": "vpc-offline",
                "tags": {"offline-placeholder": "true"},
            }
        if token == "aws:ssm/getParameter:getParameter":
            return {"name": a["name"], "type": "String", "value": "ami-" + _digest(a["name"], region), "id": a["name"]}
        if token == "aws:ec2transitgateway/getTransitGateway:getTransitGateway":
            # The real lookup returns the transit gateway's settings; offline, AWS's defaults.
            return {
                "id": a.get("id"),
                "amazonSideAsn": 64512,
                "defaultRouteTableAssociation": "enable",
                "defaultRouteTablePropagation": "enable",
                "arn": f"arn:aws:ec2:{region}:{MOCK_ACCOUNT}:transit-gateway/{a.get('id')}",
            }
        if token == "aws:ec2/getRouteTable:getRouteTable":
            # The real lookup returns the table the subnet uses; offline, a stand-in per subnet.
            rtb = "rtb-" + _digest("route-table", str(a.get("subnetId")))
            return {"id": rtb, "routeTableId": rtb, "subnetId": a.get("subnetId"), "vpcId": "vpc-offline"}
        if token == "aws:ec2/getVpc:getVpc":
            # The real lookup returns the VPC's CIDR; offline it is a stand-in, marked as such.
            return {"id": a.get("id"), "cidrBlock": "10.0.0.0/16", "tags": {"offline-placeholder": "true"}}
        if token == "gcp:organizations/getProject:getProject":
            project = a.get("projectId") or MOCK_PROJECT
            return {"projectId": project, "number": str(int(_digest(project, n=10), 16) % 10**12), "id": project}
        if token == "gcp:compute/getZones:getZones":
            return {"names": [f"{a['region']}-{z}" for z in "abc"], "id": a["region"], "region": a["region"]}
        if token == "gcp:compute/getNetwork:getNetwork":
            link = f"https://www.googleapis.com/compute/v1/projects/{a.get('project')}/global/networks/{a['name']}"
            return {"name": a["name"], "selfLink": link, "id": link}
        if token == "gcp:compute/getSubnetwork:getSubnetwork":
            link = (
                f"https://www.googleapis.com/compute/v1/projects/{a.get('project')}/regions/"
                f"{a.get('region')}/subnetworks/{a['name']}"
            )
            # The real lookup returns the subnet's range; offline it is a stand-in.
            return {"name": a["name"], "selfLink": link, "ipCidrRange": "10.0.0.0/20", "id": link}
        if token.startswith("gcp:"):
            return self._gcp_call(token, a)
        raise MissingMockError(f"the offline engine has no answer for data source {token}")

    @staticmethod
    def _gcp_call(token: str, a: dict) -> dict:
        if token == "gcp:storage/getBucket:getBucket":
            return {
                "name": a["name"],
                "id": a["name"],
                "selfLink": f"https://www.googleapis.com/storage/v1/b/{a['name']}",
                "uniformBucketLevelAccess": a["name"] not in GCP_WORLD.buckets_without_uniform_access,
            }
        if token == "gcp:compute/getSubnetworks:getSubnetworks":
            # The API's filter, as the endpoint writes it: purpose and role, ANDed.
            wanted = dict(re.findall(r'\((\w+) = "([^"]+)"\)', a.get("filter") or ""))
            found = [
                s
                for s in GCP_WORLD.subnetworks.get((str(a.get("project")), str(a.get("region"))), [])
                if all(s.get(k) == v for k, v in wanted.items())
            ]
            prefix = f"https://www.googleapis.com/compute/v1/projects/{a.get('project')}"
            return {
                "id": f"{a.get('project')}/{a.get('region')}",
                "subnetworks": [
                    {
                        "name": s["name"],
                        "description": "",
                        "ipCidrRange": s["ipCidrRange"],
                        "network": f"{prefix}/global/networks/{s['network']}",
                        "networkName": s["network"],
                        "networkSelfLink": s["network"],
                        "privateIpGoogleAccess": False,
                        "selfLink": f"{prefix}/regions/{a.get('region')}/subnetworks/{s['name']}",
                    }
                    for s in found
                ],
            }
        raise MissingMockError(f"the offline engine has no answer for data source {token}")


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None
    inputs: dict[str, Any]
    protect: bool
    ignore_changes: list[str]
    depends_on: list[str]
    delete_before_replace: bool
    retain_on_delete: bool
    property_dependencies: dict[str, list[str]]
    custom_timeouts: dict[str, str] = field(default_factory=dict)  # create/update/delete, when set

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "provider": self.provider,
            "propertyDependencies": self.property_dependencies,
            "inputs": self.inputs,
            "options": {
                "protect": self.protect,
                "ignoreChanges": self.ignore_changes,
                "dependsOn": self.depends_on,
                "deleteBeforeReplace": self.delete_before_replace,
                "retainOnDelete": self.retain_on_delete,
                # Only when set, so plans of resources without them read as they always did.
                **({"customTimeouts": self.custom_timeouts} if self.custom_timeouts else {}),
            },
        }


@dataclass
class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock resource monitor that keeps the full register-resource request of every resource."""

    mocks: CloudMocks
    registrations: list[Registration] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pulumi_mocks.MockMonitor.__init__(self, self.mocks)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the engine writes them: the parent's whole type chain, the root stack left out.

        (The SDK's mock keeps only the parent's last type and includes the stack's.)
        """
        qualified = type_
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != "pulumi:pulumi:Stack":
                qualified = f"{parent_type}${type_}"
        return f"urn:pulumi:{settings.get_stack()}::{settings.get_project()}::{qualified}::{name}"

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = clean(rpc.deserialize_properties(request.object, keep_unknowns=True))
        if request.type.startswith("pulumi:providers:") and "region" in inputs:
            self.mocks.provider_regions[response.urn] = inputs["region"]
        from_inputs = {urn for deps in request.propertyDependencies.values() for urn in deps.urns}
        self.registrations.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                provider=request.provider.rsplit("::", 1)[0] if request.provider else None,
                inputs=inputs,
                protect=bool(request.protect),
                ignore_changes=sorted(request.ignoreChanges),
                depends_on=sorted(set(request.dependencies) - from_inputs),
                delete_before_replace=bool(request.deleteBeforeReplace),
                retain_on_delete=bool(request.retainOnDelete),
                property_dependencies={
                    key: sorted(deps.urns) for key, deps in sorted(request.propertyDependencies.items()) if deps.urns
                },
                custom_timeouts={
                    op: value for op in ("create", "update", "delete") if (value := getattr(request.customTimeouts, op))
                },
            )
        )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            self.stack_outputs = clean(rpc.deserialize_properties(request.outputs, keep_unknowns=True))
        return super().RegisterResourceOutputs(request)
