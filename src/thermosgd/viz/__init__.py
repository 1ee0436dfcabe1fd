"""Figures and the HTML report: draw what they are given, never compute physics."""
