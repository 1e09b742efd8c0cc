"""twistd plugin: ``twistd -n xvbd -c etc/xvb.conf``."""

from twisted.application.service import ServiceMaker

xvbd = ServiceMaker("xvbd", "xvbd.tap", "Hosted IVR / virtual PBX server for Asterisk", "xvbd")
