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
AUDIT_OUTCOME = {"ok": "成功", "refused": "拒绝（无权）", "rejected": "驳回（无效请求）", "error": "出错"}

EVENT_TYPES = {
    "AgencyRegistered": "成员单位登记", "AgencyDutiesRevised": "职责调整", "AgencyRenamed": "单位更名",
    "SchoolRegistered": "学校登记", "SchoolUpdated": "学校信息变更",
    "DutyPerformed": "履职记录",
    "HazardReported": "隐患上报", "RectificationAssigned": "整改交办",
    "RectificationProgressReported": "整改进展", "RectificationCompleted": "整改回告",
    "RectificationVerified": "核验销号", "RectificationRejected": "退回/回头看",
    "DeadlineExtended": "整改延期", "RectificationOverdue": "整改逾期",
    "RectificationEscalated": "逾期升级",
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


def name_of(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return "—"
    return table.get(code, code)


# Payload fields shown in an item's history, in this order.
HISTORY_FIELDS = {
    "note": "说明", "summary": "情况", "reason": "理由", "new_deadline": "新期限", "deadline": "期限",
    "percent": "进度%", "name": "级别", "level_name": "级别",
}
