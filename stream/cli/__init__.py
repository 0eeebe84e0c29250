"""stream/cli"""
