"""python-osc client for the end-to-end tests: sends three timetagged bundles that open,
close and open again the gate of adsr ADSR_ID, 0.3 s from now, then 10 ms and 20.5 ms after
that, and prints each reply as one line (the address, then the arguments, tab-separated).

usage: timed_gates.py PORT ADSR_ID
"""
import sys
import time

from pythonosc import osc_bundle_builder, osc_message_builder
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import UDPClient

# Seconds after the first gate change: the second and third.
OFFSETS_S = (0.0, 0.010, 0.0205)


def timed_gate(at, adsr, gate):
    message = osc_message_builder.OscMessageBuilder(address="/module/set")
    for arg in (adsr, "gate", gate):
        message.add_arg(arg)
    builder = osc_bundle_builder.OscBundleBuilder(at)
    builder.add_content(message.build())
    return builder.build()


def main():
    port, adsr = int(sys.argv[1]), int(sys.argv[2])
    client = UDPClient("127.0.0.1", port)
    client._sock.settimeout(5.0)
    first = time.time() + 0.3
    for offset, gate in zip(OFFSETS_S, (1.0, 0.0, 1.0)):
        client.send(timed_gate(first + offset, adsr, gate))
    for _ in OFFSETS_S:
        data, _ = client._sock.recvfrom(65536)
        reply = OscMessage(data)
        print("\t".join([reply.address] + [str(a) for a in reply.params]))


if __name__ == "__main__":
    main()
