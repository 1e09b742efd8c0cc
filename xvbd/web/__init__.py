"""The web side: the health page now; the admin (/ai) and tenant (/ui) apps join here."""
