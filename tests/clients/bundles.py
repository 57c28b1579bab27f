"""python-osc client for the end-to-end tests: sends bundles to synthpool and prints each
reply as one line: the address, then the arguments, separated by tabs.

usage: bundles.py PORT
"""
import sys

from pythonosc import osc_bundle_builder, osc_message_builder
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import UDPClient


def message(address, *args):
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build()


def bundle(*messages):
    builder = osc_bundle_builder.OscBundleBuilder(osc_bundle_builder.IMMEDIATELY)
    for m in messages:
        builder.add_content(m)
    return builder.build()


def replies(client, count):
    out = []
    for _ in range(count):
        data, _ = client._sock.recvfrom(65536)
        reply = OscMessage(data)
        out.append("\t".join([reply.address] + [str(a) for a in reply.params]))
    return out


def main():
    port = int(sys.argv[1])
    client = UDPClient("127.0.0.1", port)
    client._sock.settimeout(5.0)
    # A voice in one bundle: every message answered /done, all applied in one block.
    client.send(bundle(
        message("/module/new", "vco", 5),
        message("/module/set", 5, "freq", 330.0),
        message("/patch", 5, "out", 0, "in"),
    ))
    lines = replies(client, 3)
    # A bundle with one bad message: one /fail, and nothing of it applies.
    client.send(bundle(message("/module/new", "vco", 6), message("/module/new", "kazoo", 7)))
    lines += replies(client, 1)
    client.send(message("/patch/dump"))
    lines += replies(client, 1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
