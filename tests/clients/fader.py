"""python-osc client for the end-to-end tests: moves a controller's fader as TouchOSC does
(one float to an address of its own) and prints the server's reply as one line: the
address, then the arguments, separated by tabs.

usage: fader.py PORT ADDRESS VALUE
"""
import sys

from pythonosc import osc_message_builder
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import UDPClient


def main():
    port, address, value = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    client = UDPClient("127.0.0.1", port)
    client._sock.settimeout(5.0)
    builder = osc_message_builder.OscMessageBuilder(address=address)
    builder.add_arg(value, "f")
    client.send(builder.build())
    data, _ = client._sock.recvfrom(65536)
    reply = OscMessage(data)
    print("\t".join([reply.address] + [str(a) for a in reply.params]))


if __name__ == "__main__":
    main()
