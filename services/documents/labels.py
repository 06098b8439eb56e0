"""Chinese names for the codes the read models hold (statuses, roles, event types): the one
set the pages, the brief and the review all show (tests/test_labels.py keeps it complete)."""

from __future__ import annotations

ROLE_NAMES = {"liaison": "联络员", "lead": "牵头单位", "auditor": "考核/纪检（只读）"}
# The review group's code (services/kernel/principal.py REVIEW_GROUP) and name: not a member unit.
REVIEW_GROUP_NAMES = {"review-group": "考核组/纪检"}
ACCOUNT_STATE = {True: "启用", False: "已停用"}

RECT_STATUS = {
    "reported": "已上报", "assigned": "已交办", "in_progress": "整改中", "completed": "已回告待核验",
    "closed": "已销号", "reopened": "回头看（重新整改）",
}
TASK_STATUS = {
    "assigned": "已交办", "in_progress": "办理中", "reopened": "已退回重办", "completed": "已回告待核验",
    "verified": "已核销",
}
SEVERITY = {"general": "一般", "major": "较大", "critical": "重大"}
APPLIES_TO = {
    "all": "全部学校", "canteen": "有食堂的学校", "boarding": "寄宿制学校", "school_bus": "有校车的学校",
    "none": "不针对具体学校",
}
MEETING_STATUS = {"scheduled": "待召开", "held": "已召开"}
PHASE_STATE = {"closed": "已截止", "open": "进行中", "not-started": "未开始"}
PETITION_STATUS = {"received": "已受理", "answered": "已答复", "closed": "已办结"}
PETITION_TOPIC = {
    "drinking-water": "饮用水", "canteen": "学校食堂", "dormitory": "学生宿舍", "school-bus": "校车",
    "insurance": "学生保险", "uniforms-supplies": "校服及学习用品", "fees": "收费", "environment": "周边环境",
    "facilities": "校舍设施", "other": "其他",
}
PETITION_CHANNEL = {"visit": "来访", "letter": "来信", "phone": "来电", "online": "网上信访", "hotline": "12345热线"}
APPEAL_STATUS = {"pending": "待裁定", "upheld": "申诉成立，不予扣分", "rejected": "申诉驳回"}
AGENDA_SECTIONS = {
    "overdue_rectifications": "逾期及升级督办的整改事项", "critical_hazards": "重大隐患",
    "campaigns": "专项整治进度", "warnings": "预警响应情况", "blind_spots": "责任盲区",
    "follow_up": "前次会议决议落实情况", "proposals": "成员单位提请研究事项",
}
# notification channels (services/notify/) and the states of a delivery through one
CHANNEL = {"webhook": "Webhook", "email": "电子邮件", "dingtalk": "钉钉群机器人", "wecom": "企业微信群机器人",
           "sms": "短信"}
DELIVERY_STATUS = {"pending": "待发送", "sending": "发送中", "retry": "待重试", "delivered": "已送达",
                   "failed": "发送失败", "expired": "已过期未发", "cancelled": "已取消"}
AUDIT_OUTCOME = {"ok": "成功", "refused": "被拒绝（无权）", "rejected": "被拒绝（请求无效）", "error": "出错"}

EVENT_TYPES = {
    "AgencyRegistered": "成员单位登记", "AgencyDutiesRevised": "职责调整", "AgencyRenamed": "单位更名",
    "SchoolRegistered": "学校登记", "SchoolUpdated": "学校信息变更",
    "DutyPerformed": "履职记录",
    "HazardReported": "隐患上报", "RectificationAssigned": "整改交办",
    "RectificationProgressReported": "整改进展", "RectificationCompleted": "整改回告",
    "RectificationVerified": "核验销号", "RectificationRejected": "退回/回头看",
    "DeadlineExtended": "整改延期", "RectificationOverdue": "整改逾期",
    "RectificationEscalated": "逾期升级", "ExtensionRequested": "申请延期", "ExtensionRefused": "不同意延期",
    "CampaignLaunched": "专项整治启动", "SelfCheckSubmitted": "学校自查", "JointInspectionConducted": "联合督查",
    "CampaignPhaseReminderIssued": "专项整治阶段提醒",
    "WarningIssued": "预警发布", "WarningAcknowledged": "预警签收", "WarningEscalated": "预警未签收上报",
    "MeetingScheduled": "会议安排", "AgendaItemProposed": "提请议题", "AgendaDrafted": "议程草案",
    "MeetingHeld": "会议召开", "ResolutionAdopted": "通过决议",
    "TaskAssigned": "任务交办", "TaskProgressReported": "任务进展", "TaskCompleted": "任务回告",
    "TaskVerified": "任务核销", "TaskRejected": "任务退回", "TaskDeadlineExtended": "任务延期",
    "TaskOverdue": "任务逾期", "TaskEscalated": "任务升级督办",
    "TargetSet": "后勤目标设定", "TargetRevised": "后勤目标调整",
    "SchoolRecognised": "学校获评认定", "RecognitionWithdrawn": "撤销认定",
    "ComplianceRecordLogged": "台账登记", "ComplianceRecordMissing": "台账缺失",
    "PetitionReceived": "信访受理", "PetitionAnswered": "信访答复", "PetitionClosed": "信访办结",
    "ReviewAppealFiled": "考核申诉", "ReviewAppealDecided": "申诉裁定",
}


_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1-99 as official Chinese writes them in 第四次会议, 2026年第十二期; others in digits."""
    if not 1 <= n <= 99:
        return str(n)
    tens, ones = divmod(n, 10)
    if tens == 0:
        return _DIGITS[ones]
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")


def article(clause: str) -> str:
    """A rules clause as a heading: 第十二条 (a clause id that is not a number is printed as it is)."""
    return f"第{chinese_number(int(clause)) if clause.isdigit() else clause}条"


def meeting_title(year: int, number: int) -> str:
    """The title a scheduled meeting gets when the lead gives none."""
    return f"旗校园安全局际联席会议{year}年第{chinese_number(number)}次会议"


def brief_issue(year: int, number: int) -> str:
    """The brief's issue number as its masthead prints it: 2026年第四期."""
    return f"{year}年第{chinese_number(number)}期"


def name_of(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return "—"
    return table.get(code, code)


# Payload fields shown in an item's history, in this order.
HISTORY_FIELDS = {
    "note": "说明", "summary": "情况", "reason": "理由", "new_deadline": "新期限", "deadline": "期限",
    "requested_deadline": "申请期限",
    "percent": "进度%", "name": "级别", "level_name": "级别",
}


# The audit trail's actions ("METHOD route template", services/security/audit.py) as people name
# them; tests/test_audit_page.py keeps it complete against the app's routes.
AUDIT_ACTIONS = {
    # the API
    "GET /healthz": "健康检查", "GET /readyz": "就绪检查",
    "GET /api/v1/agencies": "查看成员单位", "GET /api/v1/agencies/{code}": "查看成员单位",
    "GET /api/v1/agencies/{code}/ledger": "查看责任台账",
    "GET /api/v1/schools": "查看学校名册", "POST /api/v1/schools": "登记学校",
    "GET /api/v1/schools/template": "下载学校导入模板", "POST /api/v1/schools/import": "导入学校名册",
    "POST /api/v1/duty-logs": "登记履职", "GET /api/v1/duty-logs/template": "下载履职导入模板",
    "POST /api/v1/duty-logs/import": "导入履职记录",
    "GET /api/v1/events": "查阅事件日志", "GET /api/v1/audit": "查阅访问审计",
    "POST /api/v1/hazards": "上报隐患", "GET /api/v1/hazards/template": "下载隐患导入模板",
    "POST /api/v1/hazards/import": "导入隐患",
    "POST /api/v1/rectifications/{item_id}/assignment": "交办整改",
    "POST /api/v1/rectifications/{item_id}/progress": "报送整改进展",
    "POST /api/v1/rectifications/{item_id}/completion": "整改回告",
    "POST /api/v1/rectifications/{item_id}/verification": "核验销号",
    "POST /api/v1/rectifications/{item_id}/rejection": "退回重新整改",
    "POST /api/v1/rectifications/{item_id}/extension": "延长整改期限",
    "POST /api/v1/rectifications/{item_id}/extension-request": "申请延期",
    "POST /api/v1/rectifications/{item_id}/extension-refusal": "不同意延期",
    "GET /api/v1/rectifications": "查看整改台账", "GET /api/v1/rectifications/{item_id}": "查看整改事项",
    "POST /api/v1/campaigns": "启动专项整治", "POST /api/v1/campaigns/{campaign_id}/self-checks": "报送学校自查",
    "POST /api/v1/campaigns/{campaign_id}/joint-inspections": "登记联合督查",
    "GET /api/v1/campaigns": "查看专项整治", "GET /api/v1/campaigns/{campaign_id}": "查看专项整治",
    "GET /api/v1/campaigns/{campaign_id}/matrix": "查看专项整治进度",
    "POST /api/v1/warnings": "发布预警", "POST /api/v1/warnings/{warning_id}/acknowledgements": "签收预警",
    "GET /api/v1/warnings": "查看预警", "GET /api/v1/warnings/{warning_id}": "查看预警",
    "GET /api/v1/warning-response": "查看预警响应",
    "POST /api/v1/meetings": "安排联席会议", "GET /api/v1/meetings": "查看联席会议",
    "GET /api/v1/meetings/{meeting_id}": "查看联席会议", "GET /api/v1/meetings/{meeting_id}/agenda": "查看会议议程",
    "POST /api/v1/meetings/{meeting_id}/agenda-items": "提请议题",
    "POST /api/v1/meetings/{meeting_id}/held": "记录会议召开",
    "POST /api/v1/meetings/{meeting_id}/resolutions": "通过决议",
    "GET /api/v1/meetings/{meeting_id}/brief": "下载会议简报",
    "GET /api/v1/tasks": "查看决议任务", "GET /api/v1/tasks/{task_id}": "查看决议任务",
    "POST /api/v1/tasks/{task_id}/progress": "报送任务进展", "POST /api/v1/tasks/{task_id}/completion": "任务回告",
    "POST /api/v1/tasks/{task_id}/verification": "核销任务", "POST /api/v1/tasks/{task_id}/rejection": "退回任务",
    "POST /api/v1/tasks/{task_id}/extension": "延长任务期限",
    "GET /api/v1/targets": "查看后勤目标", "POST /api/v1/targets": "设定后勤目标",
    "POST /api/v1/targets/from-catalogue": "按目录设定后勤目标",
    "GET /api/v1/recognitions": "查看学校认定", "POST /api/v1/recognitions": "登记学校认定",
    "POST /api/v1/recognitions/{recognition_id}/withdraw": "撤销学校认定",
    "GET /api/v1/compliance/calendar": "查看台账报送日历", "GET /api/v1/compliance": "查看台账报送情况",
    "POST /api/v1/compliance-records": "登记台账",
    "GET /api/v1/petitions": "查看信访件", "GET /api/v1/petitions/rates": "查看信访办理率",
    "GET /api/v1/petitions/{petition_id}": "查看信访件", "POST /api/v1/petitions": "受理信访",
    "POST /api/v1/petitions/{petition_id}/answer": "答复信访", "POST /api/v1/petitions/{petition_id}/close": "办结信访",
    "GET /api/v1/inbox": "查看通知", "POST /api/v1/inbox/read": "标记通知已读",
    "POST /api/v1/inbox/{notification_id}/read": "标记通知已读", "GET /api/v1/inbox/channels": "查看通知渠道",
    "PUT /api/v1/inbox/channels/webhook": "设置推送地址", "PUT /api/v1/inbox/channels/email": "设置通知邮箱",
    "DELETE /api/v1/inbox/channels/{channel}": "删除通知渠道", "GET /api/v1/inbox/deliveries": "查看通知投递",
    "PUT /api/v1/inbox/channels/dingtalk": "设置钉钉群机器人",
    "PUT /api/v1/inbox/channels/wecom": "设置企业微信群机器人",
    "PUT /api/v1/inbox/channels/sms": "设置短信通知", "POST /api/v1/inbox/channels/{channel}/test": "测试通知渠道",
    "GET /api/v1/reviews/{year}": "查看年度考核", "GET /api/v1/reviews/{year}/units/{unit}": "查看单位考核",
    "POST /api/v1/reviews/{year}/units/{unit}/appeals": "提出考核申诉",
    "POST /api/v1/reviews/{year}/appeals/{appeal_id}/decision": "裁定考核申诉",
    "GET /openapi.json": "查看接口说明", "GET /docs": "查看接口说明", "GET /docs/oauth2-redirect": "查看接口说明",
    "GET /redoc": "查看接口说明",
    # the pages
    "GET /signin": "打开登录页", "POST /signin": "登录", "POST /signout": "退出登录", "GET /": "打开首页",
    "GET /sso/start": "统一身份认证登录", "GET /sso/callback": "统一身份认证登录",
    "GET /units/{code}/channels": "查看通知渠道", "POST /units/{code}/channels/{channel}": "设置通知渠道",
    "POST /units/{code}/channels/{channel}/test": "测试通知渠道",
    "POST /units/{code}/channels/{channel}/delete": "删除通知渠道",
    "GET /units/{code}": "查看责任台账", "GET /units/{code}/log": "打开填报履职页",
    "POST /units/{code}/log": "登记履职",
    "GET /units/{code}/ledger.xlsx": "导出责任台账", "GET /units/{code}/import": "打开导入页",
    "GET /units/{code}/import/template.xlsx": "下载履职导入模板", "POST /units/{code}/import": "导入履职记录",
    "GET /rectifications.xlsx": "导出整改台账", "GET /review/{year}.xlsx": "导出年度考核",
    "GET /warnings.xlsx": "导出预警响应", "GET /units/{code}/hazards/new": "打开隐患上报页",
    "POST /units/{code}/hazards/new": "上报隐患", "POST /rectifications/{item_id}/assign": "交办整改",
    "POST /rectifications/{item_id}/verify": "核验销号", "POST /rectifications/{item_id}/reject": "退回重新整改",
    "POST /rectifications/{item_id}/extend": "延长整改期限",
    "POST /rectifications/{item_id}/refuse-extension": "不同意延期",
    "POST /units/{code}/rectifications/{item_id}/extension-request": "申请延期",
    "POST /meetings/{meeting_id}/tasks/{task_id}/verify": "核销任务",
    "POST /meetings/{meeting_id}/tasks/{task_id}/reject": "退回任务", "GET /units/{code}/work": "查看整改与任务",
    "POST /units/{code}/rectifications/{item_id}/progress": "报送整改进展",
    "POST /units/{code}/rectifications/{item_id}/completion": "整改回告",
    "POST /units/{code}/tasks/{task_id}/progress": "报送任务进展",
    "POST /units/{code}/tasks/{task_id}/completion": "任务回告", "GET /units/{code}/warnings": "查看预警签收",
    "POST /units/{code}/warnings/{warning_id}/ack": "签收预警", "GET /units/{code}/agenda": "查看提请议题",
    "POST /units/{code}/agenda": "提请议题", "GET /units/{code}/petitions": "查看信访答复",
    "POST /units/{code}/petitions/{petition_id}/answer": "答复信访", "GET /dashboard": "查看总览",
    "GET /rectifications": "查看整改台账", "GET /rectifications/{item_id}": "查看整改事项",
    "GET /meetings": "查看联席会议", "POST /meetings": "安排联席会议", "GET /meetings/{meeting_id}": "查看联席会议",
    "POST /meetings/{meeting_id}/items": "添加议题", "POST /meetings/{meeting_id}/held": "记录会议召开",
    "POST /meetings/{meeting_id}/resolutions": "通过决议", "GET /meetings/{meeting_id}/brief.{fmt}": "下载会议简报",
    "GET /warnings": "查看预警响应", "GET /events": "查阅事件日志", "GET /audit": "查阅访问审计",
    "GET /review": "查看年度考核", "GET /review/{year}/units/{unit}/evidence": "查看考核依据",
    # people's accounts (the pages, and what the accounts service records itself)
    "GET /account": "查看我的账号", "GET /account/password": "打开修改密码", "POST /account/password": "修改密码",
    "GET /account/totp": "打开动态口令设置", "POST /account/totp": "启用动态口令",
    "POST /account/signout-everywhere": "在所有设备退出", "GET /accounts": "查看账号管理",
    "POST /accounts": "开通账号", "POST /accounts/{account_id}/disable": "停用账号",
    "POST /accounts/{account_id}/enable": "启用账号", "POST /accounts/{account_id}/reset-password": "重置密码",
    "POST /accounts/{account_id}/oidc": "设置统一身份认证对应", "POST /accounts/credentials": "签发接口凭证",
    "POST /accounts/credentials/{token_id}/revoke": "吊销接口凭证", "GET /units/{code}/accounts": "查看本单位账号",
    "SIGNIN": "账号登录", "ACCOUNT create": "开通账号", "ACCOUNT enable": "启用账号", "ACCOUNT disable": "停用账号",
    "ACCOUNT reset-password": "重置密码", "ACCOUNT reset-password clear-totp": "重置密码并清除动态口令",
    "ACCOUNT set-oidc": "设置统一身份认证对应", "ACCOUNT change-password": "修改密码",
    "ACCOUNT enrol-totp": "启用动态口令", "LOCKOUT": "账号锁定",
    # evidence (the API and the pages' session-cookie twins)
    "POST /api/v1/evidence": "上传佐证材料", "GET /api/v1/evidence/{digest}": "查看佐证材料",
    "GET /api/v1/evidence/{digest}/thumbnail": "查看佐证缩略图", "GET /evidence/{digest}": "查看佐证材料",
    "GET /evidence/{digest}/thumbnail": "查看佐证缩略图",
}
# The status of a refused or failed request, in words.
HTTP_STATUS = {
    400: "请求有误", 401: "未登录或凭证无效", 403: "无权操作", 404: "未找到", 405: "不支持该操作",
    409: "与已有记录冲突", 413: "内容过大", 415: "格式不支持", 422: "不符合规则", 429: "请求过于频繁",
    500: "服务器出错", 503: "服务暂不可用",
}


def audit_action(action: str) -> str:
    """"POST /api/v1/duty-logs" → 登记履职; a request that matched no route is a visit to an
    unknown address."""
    if action in AUDIT_ACTIONS:
        return AUDIT_ACTIONS[action]
    method = action.split(" ", 1)[0]
    return "访问不存在的地址" if action.endswith("(no route)") else f"其他请求（{method}）"
