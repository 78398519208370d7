"""Argument and block names per azurerm resource type, from the provider's Go sources at one
tag: the names a configuration may use (a superset: every schema key, typed-resource field
and d.Get/d.Set name in the resource's file and in its service's shared helper files).

Regenerate azurerm-<tag>-arguments.json (which test_terraform.py checks main.tf against)
from a clone of hashicorp/terraform-provider-azurerm, when the pin in versions.tf moves:

    cd terraform-provider-azurerm
    python3 .../extract_azurerm_arguments.py v4.71.0 $(grep -ho 'resource "azurerm_[a-z_]*"' \
        .../terraform/*.tf | cut -d'"' -f2 | sort -u) > .../azurerm-v4.71.0-arguments.json
"""
import json, re, subprocess, sys
tag = sys.argv[1]
resources = sys.argv[2:]
def show(path):
    return subprocess.run(["git", "show", f"{tag}:{path}"], capture_output=True, text=True, check=True).stdout
def files(pattern):
    out = subprocess.run(["git", "grep", "-l", pattern, tag, "--", "internal/services/*.go"], capture_output=True, text=True).stdout
    return [l.split(":", 1)[1] for l in out.splitlines()]
KEYS = [
    re.compile(r'^\s*"([a-z0-9_]+)":\s*\S', re.M),                 # schema map entries
    re.compile(r'tfschema:"([a-z0-9_]+)'),                          # typed resources
    re.compile(r'\b(?:d|rd|data)\.(?:Get|GetOk|Set|HasChange|GetRawConfig)\("([a-z0-9_]+)"'),
    re.compile(r'\[\s*"([a-z0-9_]+)"\s*\]'),                         # raw["key"] in expanders
]
class K:
    @staticmethod
    def findall(text):
        out = []
        for k in KEYS:
            out += k.findall(text)
        return out
KEY = K
COMMON = {"name", "location", "resource_group_name", "tags", "identity", "type", "identity_ids", "principal_id", "tenant_id", "zone"}
result = {}
for r in resources:
    main = [f for f in files(f'"{r}"') if not f.endswith("_test.go") and "registration" not in f and "data_source" not in f]
    main = [f for f in main if f.endswith("_resource.go")]
    names = set(COMMON)
    for f in main:
        names |= set(KEY.findall(show(f)))
        service = f.rsplit("/", 1)[0]
        for h in subprocess.run(["git", "ls-tree", "--name-only", f"{tag}:{service}"], capture_output=True, text=True).stdout.split():
            if h.endswith(".go") and not h.endswith("_test.go") and not h.endswith("_resource.go") and not h.endswith("_data_source.go"):
                names |= set(KEY.findall(show(f"{service}/{h}")))
    result[r] = sorted(names)
json.dump({"provider": "hashicorp/azurerm", "tag": tag, "resources": result}, sys.stdout, indent=0, sort_keys=True)
