"""Outbound calls placed by xvbd through AMI: CallBlast and Callback."""
