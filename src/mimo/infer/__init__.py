"""mimo.infer"""
