"""mimo.model"""
