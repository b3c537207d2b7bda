"""mimo.train"""
