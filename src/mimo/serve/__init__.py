"""mimo.serve"""
