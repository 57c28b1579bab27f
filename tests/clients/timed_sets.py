"""python-osc client for the end-to-end tests: sends timetagged bundles that set parameter
PARAM of module ID to each VALUE in turn, the first 0.3 s from now and the next ones 10 ms and
20.5 ms after it, and prints each reply as one line (the address, then the arguments,
tab-separated).

usage: timed_sets.py PORT ID PARAM VALUE [VALUE [VALUE]]
"""
import sys
import time

from pythonosc import osc_bundle_builder, osc_message_builder
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import UDPClient

# Seconds after the first change: the second and third.
OFFSETS_S = (0.0, 0.010, 0.0205)


def timed_set(at, module, param, value):
    message = osc_message_builder.OscMessageBuilder(address="/module/set")
    for arg in (module, param, value):
        message.add_arg(arg)
    builder = osc_bundle_builder.OscBundleBuilder(at)
    builder.add_content(message.build())
    return builder.build()


def main():
    port, module, param = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    values = [float(v) for v in sys.argv[4:]]
    client = UDPClient("127.0.0.1", port)
    client._sock.settimeout(5.0)
    first = time.time() + 0.3
    for offset, value in zip(OFFSETS_S, values):
        client.send(timed_set(first + offset, module, param, value))
    for _ in values:
        data, _ = client._sock.recvfrom(65536)
        reply = OscMessage(data)
        print("\t".join([reply.address] + [str(a) for a in reply.params]))


if __name__ == "__main__":
    main()
