from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_outbox_correlation_id')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Tenant',
            name='customer_feedback_mails',
            field=fields.CharField(default='positive', db_default='positive', max_length=16),
        ),
        ops.AddField(
            model_name='Tenant',
            name='customer_from',
            field=fields.CharField(default='', db_default='', max_length=254),
        ),
        ops.AddField(
            model_name='Tenant',
            name='customer_reply_to',
            field=fields.CharField(default='', db_default='', max_length=254),
        ),
        ops.AddField(
            model_name='Tenant',
            name='imprint_address',
            field=fields.CharField(default='', db_default='', max_length=500),
        ),
        ops.AddField(
            model_name='Tenant',
            name='imprint_company',
            field=fields.CharField(default='', db_default='', max_length=200),
        ),
        ops.AddField(
            model_name='Tenant',
            name='privacy_url',
            field=fields.CharField(default='', db_default='', max_length=500),
        ),
        ops.AddField(
            model_name='Tenant',
            name='sender_name',
            field=fields.CharField(default='', db_default='', max_length=200),
        ),
    ]
