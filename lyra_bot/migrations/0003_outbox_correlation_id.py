from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_inbound_key_created_at')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OutboxMessage',
            name='correlation_id',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
