"""diffdyn.nca"""
