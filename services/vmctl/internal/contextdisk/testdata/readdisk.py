#!/usr/bin/python3
"""Reads an extracted context disk with Debian's cloud-init and prints JSON.

    readdisk.py opennebula DIR   the OpenNebula datasource's reading of DIR
    readdisk.py nocloud DIR      the NoCloud datasource's reading of DIR as a seed
    readdisk.py shell DIR        context.sh as the OpenNebula shell parser sees it

Everything is decided by cloud-init's own code: context.sh is run by bash
through parse_shell_config, user data goes through UserDataProcessor (which
gunzips and splits MIME), network configuration through network_state. The
Go tests compare the result with what they put on the disk.
"""

import base64
import json
import os
import sys
import tempfile

from cloudinit import distros, helpers, user_data, util
from cloudinit.net import network_state
from cloudinit.sources import DataSourceNoCloud as nocloud
from cloudinit.sources import DataSourceOpenNebula as opennebula


def b64(data):
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return base64.b64encode(data).decode("ascii")


def parts(paths, raw):
    """The user data parts cloud-init would hand to its handlers."""
    if raw is None:
        return None
    out = []
    for part in user_data.UserDataProcessor(paths).process(raw).walk():
        if part.get_content_maintype() == "multipart":
            continue
        out.append(
            {
                "type": part.get_content_type(),
                "filename": part.get_filename(),
                "content": b64(util.fully_decoded_payload(part)),
            }
        )
    return out


def network(config):
    """eth0 as cloud-init's network state understands config."""
    if config is None:
        return None
    state = network_state.parse_net_config_data(config)
    ifaces = []
    for iface in state.iter_interfaces():
        subnets = []
        for s in iface.get("subnets", []):
            subnets.append(
                {
                    "type": s.get("type"),
                    "address": s.get("address"),
                    "prefix": s.get("prefix"),
                    "netmask": s.get("netmask"),
                    "gateway": s.get("gateway"),
                    "dns": s.get("dns_nameservers", []),
                    "routes": [
                        {"network": r.get("network"), "prefix": r.get("prefix"), "gateway": r.get("gateway")}
                        for r in s.get("routes", [])
                    ],
                }
            )
        ifaces.append({"name": iface.get("name"), "mac": iface.get("mac_address"), "subnets": subnets})
    return {"interfaces": ifaces, "dns": state.dns_nameservers}


def main():
    mode, disk = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp()
    paths = helpers.Paths({"cloud_dir": os.path.join(tmp, "cloud"), "run_dir": os.path.join(tmp, "run")})
    distro = distros.fetch("debian")("debian", {}, paths)
    out = {}
    if mode == "opennebula":
        res = opennebula.read_context_disk_dir(disk, distro, asuser=None)
        md = res["metadata"]
        out["metadata"] = {k: v for k, v in md.items() if isinstance(v, str)}
        out["public_keys"] = md.get("public-keys")
        out["hostname"] = md.get("local-hostname")
        out["userdata"] = parts(paths, res["userdata"])
        # The guest's NIC with the context's MAC is eth0, whatever NICs the
        # machine running this test has.
        mac = md.get("ETH0_MAC", "02:00:00:00:00:01")
        if any(k.startswith("ETH0_IP") for k in md):
            conf = opennebula.OpenNebulaNetwork(md, distro, system_nics_by_mac={mac: "eth0"}).gen_conf()
            out["network"] = network(conf)
    elif mode == "nocloud":
        os.makedirs(paths.seed_dir)
        os.symlink(os.path.abspath(disk), os.path.join(paths.seed_dir, "nocloud"))
        cfg = {"datasource": {"NoCloud": {"fs_label": None}}}
        ds = nocloud.DataSourceNoCloud(cfg, distro, paths)
        if not ds.get_data():
            raise SystemExit("NoCloud did not accept the seed")
        out["instance_id"] = ds.get_instance_id()
        out["hostname"] = ds.get_hostname(fqdn=True).hostname
        out["public_keys"] = ds.get_public_ssh_keys()
        out["userdata"] = parts(paths, ds.userdata_raw)
        out["network"] = network(ds.network_config)
    elif mode == "shell":
        # load_file, as read_context_disk_dir does: open() in text mode
        # would turn a carriage return in a value into a newline.
        context = opennebula.parse_shell_config(util.load_file(os.path.join(disk, "context.sh")))
        out["metadata"] = context
        if "CLOUD_INIT_USER_DATA" in context:
            out["userdata"] = parts(paths, base64.b64decode(context["CLOUD_INIT_USER_DATA"]))
        if "CLOUD_INIT_AUTHORIZED_KEYS" in context:
            out["authorized_keys"] = base64.b64decode(context["CLOUD_INIT_AUTHORIZED_KEYS"]).decode("utf-8")
    else:
        raise SystemExit("unknown mode " + mode)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
