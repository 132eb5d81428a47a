"""Publishing: tags and chapters inside the delivered files (mutagen), the podcast episode and its
feed (feedgen), and the ACX package with its conformance report. Below the production room (which
calls it while delivering) and above script/audio (whose settings and encoders it uses)."""
