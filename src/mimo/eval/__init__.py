"""mimo.eval"""
