"""devtools/traffic"""
